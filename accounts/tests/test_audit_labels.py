"""What the owner's audit log calls each action."""

from accounts.models import AuditLogEntry


def test_capability_actions_have_labels():
    assert AuditLogEntry(action="offer.created").action_label == "Offer created"
    assert AuditLogEntry(action="support_viewed").action_label == "Viewed by Segmenta support"


def test_an_action_without_a_label_still_reads_as_words():
    assert AuditLogEntry(action="campaign.paused_by_x").action_label == "Campaign paused by x"
