"""Factories for the models the tests need."""

from __future__ import annotations

import factory

from metrics.models import Source, Tag


class TagFactory(factory.django.DjangoModelFactory[Tag]):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


class SourceFactory(factory.django.DjangoModelFactory[Source]):
    class Meta:
        model = Source
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"bot-{n}")
    kind = Source.Kind.BOT

    @factory.post_generation
    def tags(self, create: bool, extracted: list[Tag] | None, **kwargs: object) -> None:
        if create and extracted:
            self.tags.set(extracted)
