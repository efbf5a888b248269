"""The generic trainer: builds a recipe from a resolved config and runs its steps."""
