#!/bin/sh
# Not mongosh: docker-compose.yml's `mongo` healthcheck runs `mongosh ... ping`, which the mongo
# image answers; in the FerretDB stand-in this answers it with a wire-protocol `hello` instead.
exec ferretdb -ping -listen 127.0.0.1:27017
