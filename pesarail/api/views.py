"""Base behaviour every API view shares.

Unknown query parameters are refused with a 400 naming them: a typo such as
``?statuss=failed`` must not silently return (or export) everything.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request


class StrictQueryParamsMixin:
    """Refuse query parameters the operation does not document."""

    extra_query_params: ClassVar[tuple[str, ...]] = ()

    def allowed_query_params(self, request: Request) -> set[str]:
        allowed = set(self.extra_query_params)
        if getattr(self, "action", None) == "list":
            paginator = getattr(self, "paginator", None)
            if paginator is not None:
                allowed |= {paginator.cursor_query_param, paginator.page_size_query_param}
            filterset_class = getattr(self, "filterset_class", None)
            if filterset_class is not None:
                allowed |= set(filterset_class.base_filters)
            ordering = getattr(self, "ordering_fields", None)
            if ordering:
                allowed.add("ordering")
            if getattr(self, "search_fields", None):
                allowed.add("search")
        return allowed

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        method = (request.method or "").lower()
        if method not in getattr(self, "http_method_names", ()) or not hasattr(self, method):
            return  # let DRF answer 405 first
        unknown = sorted(set(request.query_params) - self.allowed_query_params(request))
        if unknown:
            raise ValidationError(
                {name or "(empty)": ["Unknown query parameter."] for name in unknown}
            )
        self._refuse_empty_values(request)

    def _refuse_empty_values(self, request: Request) -> None:
        """``?status=`` is not "any status" and ``?cursor=`` is not the first page: an
        empty value is a 400 (leave the parameter out instead), never silently ignored."""
        errors = {
            name: ["Must not be empty; leave the parameter out instead."]
            for name in request.query_params
            if any(v == "" for v in request.query_params.getlist(name))
        }
        if errors:
            raise ValidationError(errors)
