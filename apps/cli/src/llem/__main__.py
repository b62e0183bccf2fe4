"""``python -m llem``: the same as the ``llem`` command."""

from llem.cli import main

if __name__ == "__main__":
    main()
