"""Entry point: python -m analysis --help."""

from analysis import cli

if __name__ == "__main__":
  cli.main()
