"""Stand-in for the `transformers` package inside the worker when it is not installed.

Candidate files written for fla import `transformers.processing_utils.Unpack` for a `**kwargs` type
hint and nothing else from transformers; this package provides only that.
"""
