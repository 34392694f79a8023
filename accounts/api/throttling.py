from rest_framework.throttling import SimpleRateThrottle


class OrganizationRateThrottle(SimpleRateThrottle):
    """One budget per organisation, shared by its keys and members."""

    scope = "organization"

    def get_cache_key(self, request, view):
        org = getattr(request, "organization", None)
        if org is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": f"org{org.pk}"}
