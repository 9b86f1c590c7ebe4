"""Release reports (`releasectl report`): a release's history read (history.py), made a
report (model.py: `report_of`) and rendered as HTML with plots, Markdown or JSON (one
module each). Nothing is imported here, so `releasectl` starts without scipy and
matplotlib unless it reports."""
