"""The LLM research team: everything that talks to a language model, in one package.

    base.py, client.py          settings, errors, the structured-call client (budgets, ledger, repair)
    anthropic_provider.py,      the two providers (official SDKs); jsonfix.py pulls the JSON out of a reply
    openai_provider.py
    scripted.py                 a scripted OpenAI-compatible HTTP server for the tests (no network)
    prompts.py, prompts/*.j2    the prompt templates and the text helpers they share
    planner.py                  the planner (writes a candidate), novelty judge and diversifier
    reviewer.py                 the code reviewer (reads a proposal before it is trained)
    debugger.py                 repairs a candidate after a failed probe or training run
    judge.py                    the rubric judge (the fitness's judge term)
    analyst.py                  the Analyst (with cognition) and the Summarizer
    team.py                     the team as the loop sees it: the agents behind the loop's stages

The stages (analyze, check, evaluate, propose, store) never import this package (import-linter checks
it, pyproject.toml); the loop reaches the agents through `team.Team` only. The offline proposer and
the statistical analyst are not agents: they live with their stages.
"""
