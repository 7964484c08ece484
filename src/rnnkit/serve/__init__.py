"""``rnnkit serve``: an HTTP API and a web page for trained rnnkit models.

>>> from rnnkit.serve import Settings, create_app, load_models
>>> settings = Settings(token="secret")
>>> app = create_app(load_models(["models/sentiment"], settings), settings)  # an ASGI app
"""

from rnnkit.serve.app import create_app
from rnnkit.serve.models import detect_app, load_models
from rnnkit.serve.settings import Settings

__all__ = ["Settings", "create_app", "detect_app", "load_models"]
