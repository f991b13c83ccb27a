"""What the leads review: agreement, the disagreement queue, adjudication, the dashboard's figures."""
