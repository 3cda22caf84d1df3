"""Frame ranges and the names of numbered frame files.

``parse_frames`` reads what a render farm passes on a command line: ``1-50``, ``1-50:5`` (every
5th frame), ``7`` and lists of those (``1-10,20,30-40:2``). Frames are Blender's: whole numbers
from 0 (Blender's own frame_start lower bound) to MAX_FRAME.

Files are named ``<stem>_<frame, 4 digits>.<ext>`` (``depth_0007.exr``): the trailing number is
what Blender's image sequences read, and sorting the names sorts the frames.
"""

import re

from .errors import InvalidSettingsError

MAX_FRAME = 1048574  # Blender's MAXFRAME
FRAME_DIGITS = 4

_PART = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


def parse_frames(spec):
    """``"1-50"``, ``"1-50:5"``, ``"3,7,10-12"`` -> the sorted frame numbers, each once."""
    text = str(spec).strip()
    if not text:
        raise InvalidSettingsError("No frames given: use START-END, START-END:STEP or a list such as 1,5,9-12.")
    frames = set()
    for part in text.split(","):
        part = part.strip().replace(" ", "")
        match = _PART.match(part)
        if not match:
            raise InvalidSettingsError(
                f"Frames {part!r} not understood: use START-END (1-50), START-END:STEP (1-50:5), a single "
                f"frame (7) or a comma-separated list of those; frames are whole numbers from 0."
            )
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        step = int(match.group(3)) if match.group(3) is not None else 1
        frames.update(frame_range(start, end, step, text=part))
    return sorted(frames)


def frame_range(start, end, step=1, *, text=None):
    """The frames from ``start`` to ``end`` inclusive, every ``step``, checked like parse_frames."""
    label = text or f"{start}-{end}:{step}"
    for value in (start, end, step):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidSettingsError(f"Frames {label!r}: start, end and step must be whole numbers.")
    if step < 1:
        raise InvalidSettingsError(f"Frames {label!r}: the step must be 1 or more.")
    if end < start:
        raise InvalidSettingsError(f"Frames {label!r}: the range ends before it starts (write {end}-{start}).")
    if start < 0 or end > MAX_FRAME:
        raise InvalidSettingsError(f"Frames {label!r}: frames go from 0 to {MAX_FRAME}.")
    return list(range(start, end + 1, step))


def as_frames(frames):
    """A frame spec as the API takes it: a string, one frame, (start, end), (start, end, step) or a list."""
    if isinstance(frames, str):
        return parse_frames(frames)
    if isinstance(frames, int) and not isinstance(frames, bool):
        return frame_range(frames, frames)
    if isinstance(frames, tuple) and len(frames) in (2, 3) and all(isinstance(v, int) for v in frames):
        return frame_range(*frames)
    if isinstance(frames, (list, tuple, range)):
        if not frames:
            raise InvalidSettingsError("The list of frames is empty.")
        out = set()
        for frame in frames:
            out.update(as_frames(frame))
        return sorted(out)
    raise InvalidSettingsError(
        f"Frames {frames!r} not understood: give (start, end), (start, end, step), a list of frames or a "
        f"string such as '1-50:5'."
    )


def frame_name(stem, frame, suffix):
    """``depth_0007.exr``: the name of one frame's file."""
    return f"{stem}_{frame:0{FRAME_DIGITS}d}{suffix}"


def spans(frames):
    """Consecutive runs of sorted frames as (first, last) pairs, for messages: [(1, 5), (9, 9)]."""
    out = []
    for frame in sorted(frames):
        if out and frame == out[-1][1] + 1:
            out[-1] = (out[-1][0], frame)
        else:
            out.append((frame, frame))
    return out


def describe(frames):
    """``1-5, 9`` for messages."""
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans(frames))


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def numbered_files(path):
    """The files of an image sequence, by frame: ``shot/frame_0007.png`` -> {1: .../frame_0001.png, ...}.

    Like Blender's image sequences, the frame is the last run of digits in the file name; the files
    are the ones in the same folder with the same text around it and as many digits or more.
    """
    from pathlib import Path

    path = Path(path)
    match = _NUMBERED.match(path.stem)
    if not match:
        raise InvalidSettingsError(
            f"{path.name} has no frame number in its name: an image sequence's files are "
            f"numbered, e.g. frame_0001.png, frame_0002.png."
        )
    head, digits, tail = match.groups()
    pattern = re.compile(re.escape(head) + r"(\d{%d,})" % len(digits) + re.escape(tail + path.suffix) + "$")
    found = {}
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            hit = pattern.match(candidate.name)
            if hit and candidate.is_file():
                found.setdefault(int(hit.group(1)), candidate)
    if not found:
        raise InvalidSettingsError(
            f"No files of the image sequence {head}{'#' * len(digits)}{tail}{path.suffix} in {path.parent}."
        )
    return dict(sorted(found.items()))
