"""Base model: a prefixed, time-ordered string id and creation/update times."""

from __future__ import annotations

from django.db import models

from pesarail.common.ids import IdFactory

ID_LENGTH = 32


def id_field(prefix: str) -> models.CharField:  # type: ignore[type-arg,unused-ignore]
    return models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=IdFactory(prefix), editable=False
    )


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
