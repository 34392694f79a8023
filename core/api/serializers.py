from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import Job, JobStatus


class JobFailureSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="Why it failed, in words.")
    step = serializers.CharField(
        help_text="What the job was doing when it stopped (its last progress report), "
        "or `starting`."
    )


class JobSerializer(serializers.ModelSerializer):
    failure = serializers.SerializerMethodField(
        help_text="For a failed job: why, and the step it failed at; otherwise null."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "title",
            "status",
            "progress",
            "message",
            "failure",
            "result",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(JobFailureSerializer(allow_null=True))
    def get_failure(self, job):
        if job.status != JobStatus.FAILED:
            return None
        result = job.result if isinstance(job.result, dict) else {}
        return {
            "reason": result.get("error") or job.message,
            "step": result.get("failed_step") or "starting",
        }
