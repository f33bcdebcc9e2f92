"""``python -m simulator``: the same commands as ``riverguard simulate``."""

from simulator.cli import app

if __name__ == "__main__":
    app(prog_name="python -m simulator")
