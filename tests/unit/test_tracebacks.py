"""Tracebacks put the user's frames first and leave the engine's out of that part."""

from __future__ import annotations

from pipelines.tracebacks import LIBRARY_DIR, split

TEXT = f'''Traceback (most recent call last):
  File "{LIBRARY_DIR}engine/runner.py", line 120, in run_body
    output = step.execute(payload)
  File "/srv/shop/pipelines.py", line 15, in execute
    charge(order)
  File "/srv/shop/payments.py", line 3, in charge
    raise ValueError("card declined")
  File "{LIBRARY_DIR}context.py", line 9, in get
    return 1
ValueError: card declined
'''


def test_the_users_frames_and_the_error_line():
    shown = split(TEXT)
    assert shown.error == "ValueError: card declined"
    assert shown.user_frames.splitlines() == [
        '  File "/srv/shop/pipelines.py", line 15, in execute',
        "    charge(order)",
        '  File "/srv/shop/payments.py", line 3, in charge',
        '    raise ValueError("card declined")',
    ]
    assert shown.full == TEXT
    assert "runner.py" not in shown.user_frames


def test_a_users_module_named_pipelines_is_not_mistaken_for_the_library():
    assert "/srv/shop/pipelines.py" in split(TEXT).user_frames
