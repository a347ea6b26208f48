"""How a lesson sheet looks: text styles, cell styles by role, the legend that explains them,
and the colour scales (shared with ``xlnet plot``). Only data: ``layout`` applies it."""

TEXT_STYLES = {
    "title": {"bold": True, "font_size": 14, "font_color": "#1F3864"},
    "intro": {"italic": True, "font_color": "#404040"},
    "caption": {"bold": True, "font_color": "#1F3864"},
    "label": {"italic": True, "font_color": "#595959", "font_size": 9},
    "note": {"font_color": "#404040"},
    "footer": {"italic": True, "font_color": "#595959", "font_size": 9},
    "scalar_label": {"bold": True, "font_color": "#1F3864", "align": "right"},
    "exercise_caption": {"bold": True, "font_color": "#C55A11"},
}

# Cells by role. Text is dark on every fill (a heat map's colours included); what tells an
# editable cell apart is its pale fill and blue border, kept under a colour scale.
CELL_STYLES = {
    "output": {"align": "center", "border": 1, "border_color": "#D9D9D9", "font_color": "#000000"},
    "input": {"bg_color": "#DDEBF7", "border": 2, "border_color": "#2F75B5"},
    "parameter": {"bg_color": "#DDEBF7", "border": 2, "border_color": "#2F75B5"},
    "hyper": {"bg_color": "#FFF2CC", "border": 2, "border_color": "#BF8F00", "bold": True},
    "fixed": {"bg_color": "#EDEDED", "border": 1, "border_color": "#A6A6A6", "font_color": "#404040", "bold": True},
    "exercise": {"bg_color": "#FFF4E5", "border": 2, "border_color": "#ED7D31"},
}

# One line beside each sheet's title: what each style of cell means (shown when the sheet has one).
LEGEND = (("edit me: input or weight", "input"), ("hyper-parameter: edit me", "hyper"),
          ("set when the workbook is built", "fixed"), ("your turn: fill me", "exercise"),
          ("anything else: a formula", "output"))

# Colours shared by the sheet's colour scales and by ``xlnet plot``.
HEAT_POSITIVE = ("#FFFFFF", "#4F81BD")            # white -> blue, for values that are >= 0
HEAT_DIVERGING = ("#CF6A66", "#FFFFFF", "#4F81BD")  # red (<0) -> white (0) -> blue (>0); black text reads on both ends
