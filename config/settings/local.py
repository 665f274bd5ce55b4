"""Developer settings: `make run` uses these with the `.env` it writes."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
