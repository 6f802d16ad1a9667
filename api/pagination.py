"""Pagination of the API's lists.

Page numbers (the default) for lists a person pages through. Their ``count`` is exact up to
``EXACT_COUNT_LIMIT`` rows; above that it is PostgreSQL's estimate, because an exact ``COUNT(*)``
over hundreds of thousands of rows costs more than the page itself. Whether there is a next page
is always exact: each page reads one row more than it shows.

Cursor (keyset) pagination for the audit trail: it only grows, nobody jumps to page 4,000 of
it, and each page costs the same however deep it is.
"""

import json
from functools import cached_property

from django.core.paginator import InvalidPage, Page, PageNotAnInteger
from django.core.paginator import Paginator as DjangoPaginator
from django.db import connections
from rest_framework.pagination import CursorPagination, PageNumberPagination

EXACT_COUNT_LIMIT = 1_000
MAX_PAGE_SIZE = 100


def estimated_count(queryset) -> int | None:
    """The planner's row estimate for the query on PostgreSQL; None elsewhere."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class BoundedCountPage(Page):
    def __init__(self, object_list, number, paginator, *, has_next: bool):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next


class BoundedCountPaginator(DjangoPaginator):
    """A Django paginator whose count is exact only up to ``EXACT_COUNT_LIMIT`` rows."""

    @cached_property
    def count(self) -> int:
        # COUNT(*) over "any LIMIT + 1 rows": it stops reading there, in whatever order is cheapest.
        # Only the key is selected: an annotation the list shows (a study's image count, the worklist's
        # top confidence) would otherwise run as a subquery for each of those rows; one the filters
        # use stays in the WHERE clause.
        rows = self.object_list.order_by().values("pk")
        exact = rows[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            self.count_is_exact = True
            return exact
        estimate = estimated_count(rows)
        if estimate is None:
            self.count_is_exact = True
            return self.object_list.count()
        self.count_is_exact = False
        return max(estimate, EXACT_COUNT_LIMIT + 1)

    def validate_number(self, number):
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger("That page number is not an integer") from exc
        if number < 1:
            raise InvalidPage("That page number is less than 1")
        if self.count_is_exact_or_small() and number > self.num_pages:
            raise InvalidPage("That page contains no results")
        return number

    def count_is_exact_or_small(self) -> bool:
        self.count  # noqa: B018 - sets count_is_exact
        return self.count_is_exact

    def page(self, number) -> BoundedCountPage:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            # Beyond an estimated count's real end.
            raise InvalidPage("That page contains no results")
        return BoundedCountPage(rows[: self.per_page], number, self, has_next=len(rows) > self.per_page)


class Pagination(PageNumberPagination):
    django_paginator_class = BoundedCountPaginator
    page_size = 25
    page_size_query_param = "page_size"
    # A client cannot ask for the whole table in one response.
    max_page_size = MAX_PAGE_SIZE

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["description"] = (
            f"Number of matching rows: exact up to {EXACT_COUNT_LIMIT:,}, PostgreSQL's estimate above that. "
            "Follow `next` to page through; it is always exact."
        )
        return response


class NewestFirstCursorPagination(CursorPagination):
    """Keyset pagination, newest first: ``next``/``previous`` carry an opaque cursor; there is no count."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    ordering = ("-occurred_at", "-id")
