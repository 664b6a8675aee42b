// The live stream's hub on the Web PubSub service (core/webpubsub.bicep), deployed after the
// function app because its event handler is the app: Web PubSub posts each client frame there
// as a CloudEvent (`POST /api/webpubsub/events`, shared/api/stream.py), after the
// abuse-protection `OPTIONS` on the same URL.
param webPubSubName string
@description('The hub: QCOS_WEBPUBSUB_HUB, which the app is given too.')
param name string
@description('The function app\'s host name (its defaultHostName).')
param appHostName string

// The route of shared/api/stream.py's event handler (host.json's routePrefix is "").
var eventHandlerPath = '/api/webpubsub/events'

resource service 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: service
  name: name
  properties: {
    eventHandlers: [
      {
        urlTemplate: 'https://${appHostName}${eventHandlerPath}'
        // A client's frames are `message` events: the subscription frame is the one the
        // handler acts on (it checks the key, joins the groups, answers the acknowledgement).
        userEventPattern: '*'
        // None: the handler has nothing to do on connect, connected or disconnected. A blocking
        // `connect` would put a function call (a cold start, even) into every handshake, and
        // each event posted counts as an outbound message.
        systemEvents: []
      }
    ]
    // Clients come with the token negotiate gives (`POST /api/v2/network/stream/negotiate`):
    // a connection without one is refused at the handshake. Only a proxy that serves the
    // reference's plain URL (funchost's, locally) brings its own token.
    anonymousConnectPolicy: 'deny'
  }
}

output name string = hub.name
