"""Research API (CONTRACT.md, "Research"), mounted under /api/v1/: feedback
(api_feedback.py), themes and changes (api_themes.py), surveys (api_surveys.py)."""

from .api_feedback import urlpatterns as feedback_urls
from .api_surveys import urlpatterns as survey_urls
from .api_themes import urlpatterns as theme_urls

urlpatterns = [*feedback_urls, *theme_urls, *survey_urls]
