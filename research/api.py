"""Research API (CONTRACT.md, "Research"), mounted under /api/v1/: feedback
(api_feedback.py), themes (api_themes.py), what changed (api_changes.py), surveys (api_surveys.py)."""

from .api_changes import urlpatterns as changes_urls
from .api_feedback import urlpatterns as feedback_urls
from .api_surveys import urlpatterns as survey_urls
from .api_themes import urlpatterns as theme_urls

urlpatterns = [*feedback_urls, *theme_urls, *changes_urls, *survey_urls]
