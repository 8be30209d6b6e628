"""The API gateway: REST/JSON (from the contracts' google.api.http annotations), GraphQL,
Server-Sent Events and WebSockets at the edge, OAuth2/JWT, rate limits; behind it an
ordinary mesh client with the identity ``gateway``.

routes.py is the request handling (the ASGI app), streams.py the server streams' three
transports, graphql.py the GraphQL schema, server.py the process (``python -m
services.gateway``)."""
