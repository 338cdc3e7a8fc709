/* routes.h — the OpenAPI document, generated from the route table so the two agree. */
#ifndef CAPX_SERVER_ROUTES_H
#define CAPX_SERVER_ROUTES_H

#include <jansson.h>

json_t *openapi_document(void);

#endif
