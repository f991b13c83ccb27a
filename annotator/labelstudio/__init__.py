"""Label Studio, seen from the product: the API client and task/prediction format, accounts."""
