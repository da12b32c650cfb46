"""Media back ends: sources (aiortc tracks) and sinks (track consumers), chosen by name.

See `registry` for the names; importing this package imports no back end.
"""
