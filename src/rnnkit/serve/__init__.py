"""``rnnkit serve``: an HTTP API and a web page for trained rnnkit models.

>>> from rnnkit.serve import Settings, create_app, load_models
>>> settings = Settings(token="secret")
>>> models = load_models(["models/sentiment"], settings)  # doctest: +SKIP
>>> app = create_app(models, settings)  # an ASGI app for uvicorn  # doctest: +SKIP
"""

from rnnkit.serve.app import create_app
from rnnkit.serve.models import detect_app, load_models
from rnnkit.serve.settings import Settings

__all__ = ["Settings", "create_app", "detect_app", "load_models"]
