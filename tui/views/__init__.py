"""The terminal UI (Textual): screens, widgets, and the app that feeds them the store.

Textual draws a screen's changes on a timer, and reads its frame rate once, from
``TEXTUAL_FPS``, when it is first imported: so it is set here, before any module of this
package imports Textual.

The rate is twice Textual's default because a keystroke's frame waits for that timer: a frame
that overran its period (a busy service's tables redrawn) puts the next one up to two periods
away, which at 60 frames a second is 33 ms of a keystroke's 50 ms budget spent idle. Frames
are only drawn when something changed, so a higher rate costs no work while nothing does.
A user's own ``TEXTUAL_FPS`` wins.
"""

import os

FRAMES_PER_SECOND = 120

os.environ.setdefault("TEXTUAL_FPS", str(FRAMES_PER_SECOND))
