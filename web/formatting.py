def percent_text(value: float) -> str:
    """0.8734 -> '87.3%'. A model is never shown as certain: 0.9996 reads '>99.9%', 0.0004 '<0.1%'."""
    value = float(value)
    if 0.999 < value < 1.0:
        return ">99.9%"
    if 0.0 < value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%"
