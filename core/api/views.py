from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from core import jobs
from core.models import Job

from .base import TenantReadOnlyViewSet
from .serializers import JobSerializer


class JobViewSet(TenantReadOnlyViewSet):
    """Background jobs of the organisation: imports, segmentation and prediction runs."""

    model = Job
    serializer_class = JobSerializer
    list_params = ("kind", "status")

    def get_base_queryset(self):
        qs = super().get_base_queryset()
        kind = self.request.query_params.get("kind")
        status = self.request.query_params.get("status")
        if self.action == "list":
            # the builder's previews are not listed unless asked for by kind; each is
            # still read by its id
            qs = jobs.jobs_listed(qs, kind)
        elif kind:
            qs = qs.filter(kind=kind)
        if status:
            qs = qs.filter(status=status)
        return qs

    @extend_schema(
        summary="Cancel a job",
        request=None,
        responses=JobSerializer,
        description="Stops a queued or running job. A finished job answers 400; a privacy "
        "clean-up (kind `erasure`) answers 409 `not_cancellable`.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = jobs.job_cancel(job=self.get_object())
        return Response(JobSerializer(job).data)
