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
        self._refuse_empty_choices(request)

    def _refuse_empty_choices(self, request: Request) -> None:
        """``?status=`` is not "any status": a filter with a fixed set of values (choice,
        boolean) given an empty value is a 400, not silently ignored."""
        import django_filters

        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is None or getattr(self, "action", None) != "list":
            return
        strict = (django_filters.ChoiceFilter, django_filters.MultipleChoiceFilter,
                  django_filters.BooleanFilter)
        errors = {
            name: ["Must not be empty."]
            for name, flt in filterset_class.base_filters.items()
            if isinstance(flt, strict) and name in request.query_params
            and any(v == "" for v in request.query_params.getlist(name))
        }
        if errors:
            raise ValidationError(errors)
