"""The exceptions the MindAR compiler raises, one type per reason an input is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arv.mindar.compiler import TargetReport


class MindARError(Exception):
    """Base of every error the compiler raises on purpose."""


class MindARInputError(MindARError):
    """An input image was refused; the message is one sentence a customer can act on.

    Parameters:
        message: the sentence saying what is wrong and, where possible, what to do.
        source: a name for the input (a file name, or ``image 2`` for bytes and arrays), or None.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class NotAnImageError(MindARInputError):
    """The data is not an image at all (text, a document, random bytes)."""


class UnsupportedImageFormatError(MindARInputError):
    """The data is an image, but in a format the compiler does not read (SVG, HEIC, PSD, ...)."""


class ImageTooLargeError(MindARInputError):
    """The image header claims more pixels than the configured limit (a possible decompression bomb)."""


class TruncatedImageError(MindARInputError):
    """The file ends early or its pixel data is damaged."""


class ImageTooSmallError(MindARInputError):
    """The image has too few pixels on its shortest side to make a target."""


class TargetUntrackableError(MindARInputError):
    """The image has too few details for MindAR to ever find or follow it (blank or nearly flat).

    Parameters:
        report: the quality report of the refused image, which says what was found.
    """

    def __init__(self, message: str, *, report: TargetReport, source: str | None = None) -> None:
        super().__init__(message, source=source)
        self.report = report


class MindFileError(MindARError):
    """A ``.mind`` file could not be read: not MessagePack, not version 2, or missing fields."""
