"""`python -m infra`: the llm-deploy CLI."""

from infra.cli import main

main()
