"""API routes of connectors, mounted under ``/api/v1/``.

Other apps add their own actions under ``connectors/<id>/…`` in their own ``api_urls.py``
(ingest: ``records/``, ``save/``; pipelines: ``test/``).
"""

from rest_framework.routers import SimpleRouter

from connectors.api import ConnectorViewSet

router = SimpleRouter()
router.register("connectors", ConnectorViewSet, basename="connector")

urlpatterns = router.urls
