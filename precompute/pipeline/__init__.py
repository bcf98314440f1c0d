"""Building the explorer's database: the job and its stages (dashboards, token statistics, matching, probe-free scores),
Ray builds (distributed), merging databases (merge) and upgrading old ones (migrate)."""
