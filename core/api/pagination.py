from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """`{"count", "next", "previous", "results"}`; `?page_size=` up to 1000."""

    page_size_query_param = "page_size"
    max_page_size = 1000
    # a page beyond the last (or not a number) is a 404 with the error shape, so a
    # script paging on learns it went too far; the site's lists show the last page
    invalid_page_message = "There is no page '{page_number}' of this list: pages run from 1 to the last page ({message})."
