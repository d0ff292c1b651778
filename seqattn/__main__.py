"""``python -m seqattn`` runs the command-line interface."""

from seqattn.cli import main

if __name__ == "__main__":
    main()
