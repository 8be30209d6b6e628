"""The API gateway: REST/JSON (from the contracts' google.api.http annotations), GraphQL,
Server-Sent Events and WebSockets at the edge, OAuth2/JWT, rate limits; behind it an
ordinary mesh client with the identity ``gateway``. See app.py."""
