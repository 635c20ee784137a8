"""Reports for people, made offline by scripts: the weekly insights summary, its chat message and S3 folder."""
