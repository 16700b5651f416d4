"""Volunteers' favourites and named collections of candidates (issue 28).

A collection is shared by an unguessable token in its URL: public ones are readable by
anyone with the link, private ones by their owner only (everyone else gets a 404, so a
private collection's existence is not revealed)."""

from django.db import models

from labelapp.models.survey import Candidate
from labelapp.models.volunteers import Volunteer


class Favourite(models.Model):
    volunteer = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="favourites")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["volunteer", "candidate"], name="favourite_unique_volunteer_candidate"
            )
        ]
        indexes = [models.Index(fields=["volunteer", "-created_at"], name="favourite_recent")]

    def __str__(self) -> str:
        return f"{self.volunteer_id} likes {self.candidate_id}"


class Collection(models.Model):
    owner = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="collections")
    token = models.CharField(max_length=24, unique=True, help_text="The share URL's key.")
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True, default="")
    public = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    candidates = models.ManyToManyField(
        Candidate, through="CollectionItem", related_name="+", blank=True
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="collection_unique_owner_name")
        ]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.name} ({'public' if self.public else 'private'})"


class CollectionItem(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="items")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "candidate"], name="collection_item_unique"
            )
        ]
        ordering = ["-added_at"]
