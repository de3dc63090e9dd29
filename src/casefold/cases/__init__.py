"""Case lifecycle: opening, changing, commenting, and the timeline every change writes."""
