"""Cursor pagination over time-ordered ids: stable under inserts, O(1) per page."""

from __future__ import annotations

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    ordering = "-pk"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    cursor_query_param = "cursor"
