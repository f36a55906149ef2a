"""Model front-ends of athena (import one explicitly: `from athena.models.olmoe import ...`)."""
