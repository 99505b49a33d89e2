"""mre-wide helpers below every layer (README, "Layout"): what any module may import."""
