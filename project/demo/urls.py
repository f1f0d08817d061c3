from django.urls import path

from project.demo import views

app_name = "demo"
urlpatterns = [path("", views.order, name="order")]
