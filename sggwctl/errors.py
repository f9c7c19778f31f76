"""sggwctl's exit statuses, and the one-line error that carries one.

    0  done (``status``: the controller says ``ok``)
    1  the controller refused: a 4xx or 5xx other than 401/403 (the line has the status,
       the server's message and the field it is about)
    2  usage: a bad flag, argument or input file; nothing was sent
    3  the controller could not be reached, or did not answer in time
    4  authentication: a missing or wrong token (401, 403)
    5  ``status`` only: the controller answered, but says ``degraded``
"""
OK, REFUSED, USAGE, UNREACHABLE, AUTH, DEGRADED = range(6)


class CtlError(Exception):
    """Ends sggwctl with ``line`` on stderr and exit status ``code``."""

    def __init__(self, code, line):
        super().__init__(line)
        self.code = code
        self.line = line
