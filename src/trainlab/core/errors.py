"""One exception type for bad user input: the CLI prints it as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input (config, data, run directory), not a bug in trainlab.

    The message is always one line: the CLI prints it as `error: <message>` and exits with code 2.
    """

    def __init__(self, message: str = ""):
        super().__init__(" ".join(part.strip() for part in str(message).splitlines() if part.strip()))


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived during training; last.pt was saved at a step boundary. The message is the run dir."""


class DamagedRun(UserError):
    """A run directory file does not hold what this version of trainlab writes (damaged, hand-edited, or written
    by another version). `what` names the file and the problem: `DamagedRun("data.json has no 'input_shape'")`."""

    def __init__(self, what: str):
        super().__init__(f"this run directory is damaged or from another version: {what}")
