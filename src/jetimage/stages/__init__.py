"""The stages of the workflow, one per Snakemake rule, each called as ``jetimage <stage>``.

A stage reads files and writes files (atomically); it holds the orchestration of one step and
calls the layers below for the work. Stages may use each other's helpers, never in a cycle.
"""
