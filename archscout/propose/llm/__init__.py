"""LLM providers, the structured-call client with its ledger and budgets, and the scripted test server."""
