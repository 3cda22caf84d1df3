"""Errors the engine raises. Each message is written for the user: it says what went wrong
and what to do next, so callers (operators, CLI, server) can show ``str(error)`` as it is."""


class FathomError(Exception):
    """Base of every error Fathom reports to a user."""


class InvalidSettingsError(FathomError, ValueError):
    """A depth setting is out of range or unknown."""


class ImageError(FathomError):
    """An input picture cannot be used."""


class ImageDecodeError(ImageError):
    """The file is not an image, is empty, truncated or corrupt."""


class ImageTooLargeError(ImageError):
    """The picture has more pixels than allowed (decompression-bomb guard)."""


class ModelError(FathomError):
    """Base of model catalogue and model store problems."""


class UnknownModelError(ModelError, KeyError):
    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelMissingError(ModelError):
    """The model file is not on disk and cannot be downloaded now."""


class DownloadError(ModelError):
    """A model download failed (network, HTTP status, truncated file)."""


class ChecksumError(DownloadError):
    """A downloaded or installed model file does not match the catalogue's sha256."""


class CancelledError(FathomError):
    """The user cancelled a long operation; nothing half-done was put in place."""


class InferenceError(FathomError):
    """onnxruntime could not load or run the model."""
