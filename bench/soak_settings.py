"""Settings for the soak: the test settings, with a crash budget that random kills cannot
spend (a step may be hit several times by bad luck; that is not what the soak measures)."""

from tests.settings import *  # noqa: F403

PIPELINES_CRASH_BUDGET = 50
