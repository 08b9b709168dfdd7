"""The errors stackyard raises.

Two families matter to callers: :class:`InputError` (the request is wrong; retrying cannot help,
so operators fail the task without retries) and :class:`ToolError` (an external tool failed; the
message carries the tool, its exit code and a masked tail of its output).
"""

from __future__ import annotations


class StackyardError(Exception):
    """Base class of every error stackyard raises on purpose."""


class InputError(StackyardError, ValueError):
    """A request, file or configuration is invalid. The message names what is wrong."""


class NotFoundError(InputError, LookupError):
    """Something named by the request does not exist (a chart version, a profile, a manifest)."""


class ConflictError(StackyardError):
    """A compare-and-swap lost: the state moved on since it was read."""


class ImmutableArtifactError(InputError):
    """An artifact already published with different content was published again."""


class AccessDeniedError(StackyardError, PermissionError):
    """A key, registry or cluster refused access (for example a KMS key the caller cannot use)."""


class UnavailableError(StackyardError):
    """A service stackyard depends on could not be reached (a registry, a key service). A retry
    may succeed, unlike for :class:`AccessDeniedError`."""


class ToolError(StackyardError):
    """An external CLI (helm, sops, kubectl) exited unsuccessfully.

    ``output_tail`` is the last lines of the tool's combined output with every registered
    secret already replaced by ``***``; the full output was streamed to the task log as it came.
    """

    def __init__(self, tool: str, exit_code: int, output_tail: str, summary: str = "") -> None:
        self.tool = tool
        self.exit_code = exit_code
        self.output_tail = output_tail
        head = summary or f"{tool} exited with code {exit_code}"
        super().__init__(f"{head}\n{output_tail}".rstrip())
