"""`python -m notifier.cli ROLE`: how roles start one another."""

from notifier.cli import main

main()
