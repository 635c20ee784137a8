"""Jobs started on a schedule: the daily retraining, as an ECS task or an EMR Serverless run."""
