"""Events the `notes` plugin publishes. Implement them with `@hookimpl` to react.

An event fires once, after the transaction that made the change has committed, so a
listener can read the change from the database; a change rolled back fires nothing. A
listener may be async; if it raises, the error is logged and the change stands.
"""

from __future__ import annotations

from core.hookspecs import hookspec

from courtyard_notes.api import Note


@hookspec
def note_created(note: Note) -> None:
    """A note was created (`note.owner_id` is the user who owns it)."""
