"""The bodies of the ``gpuseg`` commands; :mod:`gpuseg.cli` parses the arguments and calls them.

Part of the command line: these modules (and :mod:`gpuseg.cli`) are the only ones that print.
"""
