"""The ``gpuseg`` command."""


def main() -> int:
    """Entry point of the ``gpuseg`` command."""
    return 0
